#!/usr/bin/env bash
# Install the melanoma screening kiosk @KIOSK_VERSION@ from this offline bundle.
#
#   sudo ./install.sh          (on the Pi: 64-bit Raspberry Pi OS, Bookworm or Trixie)
#
# Needs no network. Safe to run again: to repair, or with a newer bundle to update. It never
# overwrites /etc/melanoma-kiosk/kiosk.toml once it exists. Written by deploy/build-bundle
# from deploy/install.sh; see deploy/README.md.
#
# Everything outside the bundle can be redirected, so the tests run this in a throwaway root:
#   KIOSK_ROOT=/           prefix for every path written
#   PYTHON3 SYSTEMCTL USERADD USERMOD GETENT CHOWN    the commands used (default: by name)
#   KIOSK_DESKTOP_USER     who gets the browser unit and labwc autostart (default: uid 1000)
#   KIOSK_START=0          enable the service but do not start it (the first-boot hook reboots)
#   KIOSK_SITE_CONFIG=F    a new kiosk.toml starts from F (the centre's settings that
#                          deploy/provision-sd --site put on the card) instead of the example
#   KIOSK_SYNC_CONFIG=F    the site's [sync] table (provision-sd's melanoma-kiosk-sync.toml):
#                          becomes /etc/melanoma-kiosk/sync.toml; with that file (from F or an
#                          earlier run) Syncthing to the RHU is configured and enabled, else not
#   RUNUSER SYNCTHING      the commands for that step (default: runuser, syncthing)
#   DPKG                   installs the bundle's debs/*.deb (Debian's syncthing, build-bundle --deb)
#                          offline when syncthing is missing (default: dpkg)
set -euo pipefail
umask 022  # the service user must be able to read the venv and the models

prog=install.sh
die() { echo "$prog: error: $*" >&2; exit 1; }
say() { echo "$prog: $*"; }

version="@KIOSK_VERSION@"
model_file="@MODEL_FILE@"
pythons="@PYTHONS@"

bundle="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="${KIOSK_ROOT:-/}"
root="${root%/}"
python3="${PYTHON3:-python3}"
systemctl="${SYSTEMCTL:-systemctl}"
useradd="${USERADD:-useradd}"
usermod="${USERMOD:-usermod}"
getent="${GETENT:-getent}"
chown="${CHOWN:-chown}"
start="${KIOSK_START:-1}"
site_config="${KIOSK_SITE_CONFIG:-}"
sync_config="${KIOSK_SYNC_CONFIG:-}"
runuser="${RUNUSER:-runuser}"
syncthing="${SYNCTHING:-syncthing}"
dpkg="${DPKG:-dpkg}"

# Paths as the running system sees them (they go into config files), and r() for where
# this script writes them.
opt=/opt/melanoma-kiosk
etc=/etc/melanoma-kiosk
r() { printf '%s%s' "$root" "$1"; }

if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
    die "run as root: sudo $0"
fi
if [ -n "$site_config" ] && [ ! -f "$site_config" ]; then
    die "KIOSK_SITE_CONFIG=$site_config does not exist, nothing installed"
fi
if [ -n "$sync_config" ] && [ ! -f "$sync_config" ]; then
    die "KIOSK_SYNC_CONFIG=$sync_config does not exist, nothing installed"
fi

# --- 1. integrity: change nothing unless every file matches SHA256SUMS --------------
cd "$bundle"
[ -f SHA256SUMS ] || die "$bundle/SHA256SUMS is missing: not a complete bundle, nothing installed"
if ! sha256sum --check --strict --quiet SHA256SUMS >/dev/null 2>&1; then
    bad="$(sha256sum --check --strict SHA256SUMS 2>&1 | grep -v ': OK$' | head -n 3 | tr '\n' ' ' || true)"
    die "bundle damaged, nothing installed (copy it again): ${bad}"
fi
# pip --find-links would pick up any extra wheel, so an unlisted file is refused too.
unlisted="$(LC_ALL=C comm -13 <(sed 's/^[0-9a-f]\{64\}  //' SHA256SUMS | LC_ALL=C sort) \
                     <(find . -type f ! -path ./SHA256SUMS | sed 's|^\./||' | LC_ALL=C sort) | head -n 3 | tr '\n' ' ')"
[ -z "$unlisted" ] || die "bundle has files SHA256SUMS does not list, nothing installed: ${unlisted}"
# The .debs (build-bundle --deb: Debian's syncthing for an offline first boot), each also against
# the sha256 build-bundle recorded for it when it took the file (debs/SHA256SUMS).
debs=()
if [ -d debs ]; then
    [ -f debs/SHA256SUMS ] || die "bundle has debs/ but no debs/SHA256SUMS, nothing installed"
    if ! (cd debs && sha256sum --check --strict --quiet SHA256SUMS >/dev/null 2>&1); then
        bad="$(
            cd debs || exit 0
            { sha256sum --check --strict SHA256SUMS 2>&1 | grep -v ': OK$' | head -n 2 | tr '\n' ' '; } || true
        )"
        die "a .deb does not match the sha256 recorded in debs/SHA256SUMS, nothing installed: ${bad}"
    fi
    # Only the listed ones are installed (SHA256SUMS above already refuses any file it does not list).
    while read -r _ name; do debs+=("$bundle/debs/$name"); done <debs/SHA256SUMS
fi
say "bundle verified (melanoma-kiosk $version)"

# --- 2. the wheelhouse for this Python ----------------------------------------------
pyver="$("$python3" -c 'import sys; print("%d%d" % sys.version_info[:2])' 2>/dev/null)" \
    || die "cannot run $python3 (Raspberry Pi OS ships it: is this Raspberry Pi OS?)"
tag="cp$pyver"
case " $pythons " in
    *" $tag "*) ;;
    *) die "this bundle has wheels for Python $(echo "$pythons" | sed 's/cp3/3./g; s/ /, /g'), but $python3 is ${pyver:0:1}.${pyver:1} (use 64-bit Raspberry Pi OS Bookworm or Trixie)" ;;
esac
wheels="$bundle/wheels/$tag"
kiosk_wheel="$wheels/melanoma_kiosk-$version-py3-none-any.whl"
[ -f "$kiosk_wheel" ] || die "bundle lacks $kiosk_wheel"
"$python3" -m venv --help >/dev/null 2>&1 || die "$python3 has no venv module (install python3-venv)"

# --- 3. the service user ------------------------------------------------------------
if "$getent" passwd kiosk >/dev/null 2>&1; then
    say "user kiosk exists"
else
    say "creating system user kiosk"
    "$useradd" --system --user-group --home-dir /var/lib/melanoma-kiosk --no-create-home \
        --shell /usr/sbin/nologin kiosk
fi
groups=""
for group in video gpio; do
    if "$getent" group "$group" >/dev/null 2>&1; then groups="${groups:+$groups,}$group"; fi
done
[ -z "$groups" ] || "$usermod" --append --groups "$groups" kiosk

# --- 4. the code: a venv that also sees apt's picamera2 and lgpio --------------------
venv="$(r "$opt")/venv"
if [ -x "$venv/bin/python" ] && [ "$("$venv/bin/python" -c 'import sys; print("%d%d" % sys.version_info[:2])' 2>/dev/null)" != "$pyver" ]; then
    say "the venv was made for another Python; recreating it"
    rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
    say "creating $opt/venv (--system-site-packages)"
    mkdir -p "$(r "$opt")"
    "$python3" -m venv --system-site-packages "$venv"
fi
say "installing melanoma-kiosk and its dependencies from wheels/$tag (offline)"
pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input)
# Exactly the lock's versions, each wheel checked against the lock's sha256 (--require-hashes);
# the pins also win over older copies in the system site-packages (apt's numpy).
"${pip[@]}" install --quiet --no-index --find-links "$wheels" --require-hashes --no-deps \
    -r "$bundle/locks/pi-$tag.txt"
# Same version number, newer build: replace the kiosk's own files every time.
"${pip[@]}" install --quiet --no-index --no-deps --force-reinstall "$kiosk_wheel"
"$venv/bin/python" -c 'import kiosk' || die "the kiosk does not import in $opt/venv"

# --- 5. models, docs, settings -------------------------------------------------------
# Merged, not replaced: other models stay, and a model that a signed USB update manages
# (NAME.tflite is then a link into NAME.versions/, see deploy/UPDATES.md) is left alone.
install -d -m 0755 "$(r "$opt")/models" "$(r "$opt")/systemd"
for file in models/*; do
    dest="$(r "$opt")/$file"
    if [ -L "$dest" ]; then
        say "keeping $opt/$file: a signed update installed it (roll back on the kiosk, not here)"
        continue
    fi
    install -m 0644 "$file" "$dest"
done
# The service applies signed model updates here (ReadWritePaths in the unit).
"$chown" -R -h kiosk:kiosk "$(r "$opt")/models"
for file in systemd/*; do
    install -m 0644 "$file" "$(r "$opt")/systemd/"  # the unit's Documentation= points here
done
install -m 0644 BUNDLE.txt "$(r "$opt")/BUNDLE.txt"

install -d -m 0755 "$(r "$etc")"
install -m 0644 config/kiosk.example.toml "$(r "$etc")/kiosk.example.toml"
if [ -f config/update-key.pub ]; then
    # The team's key for signed model updates (updates.public_key); root's, so the
    # unprivileged service cannot swap it.
    install -m 0644 config/update-key.pub "$(r "$etc")/update-key.pub"
    say "installed the model-update public key $etc/update-key.pub"
fi
conf="$(r "$etc")/kiosk.toml"
model_path="$opt/models/$model_file"
template=config/kiosk.example.toml
[ -z "$site_config" ] || template="$site_config"
if [ -e "$conf" ]; then
    say "keeping the existing $etc/kiosk.toml"
    [ -z "$site_config" ] || say "warning: the site settings in $site_config were not applied (kiosk.toml exists)"
    grep -Eq '^[[:space:]]*path[[:space:]]*=' "$conf" \
        || say "warning: $etc/kiosk.toml sets no model.path; add path = \"$model_path\" under [model]"
else
    say "writing $etc/kiosk.toml (model.path = $model_path)${site_config:+, with the site settings}"
    sed "/^\[model\]\$/a path = \"$model_path\"" "$template" >"$conf.new"
    grep -q "^path = \"$model_path\"\$" "$conf.new" || die "$template has no [model] section"
    chmod 0640 "$conf.new"
    "$chown" root:kiosk "$conf.new"
    mv "$conf.new" "$conf"
fi

# --- 6. the service, and polkit's leave for the hold-to-shut-down button ---------------
install -d -m 0755 "$(r /etc/systemd/system)"
install -m 0644 systemd/melanoma-kiosk.service "$(r /etc/systemd/system)/melanoma-kiosk.service"
install -d -m 0755 "$(r /etc/polkit-1/rules.d)"
cat >"$(r /etc/polkit-1/rules.d)/50-melanoma-kiosk.rules" <<'EOF'
// Written by the melanoma kiosk's install.sh: holding the kiosk's button powers the Pi off.
polkit.addRule(function (action, subject) {
    if ((action.id == "org.freedesktop.login1.power-off" ||
         action.id == "org.freedesktop.login1.power-off-multiple-sessions") &&
        subject.user == "kiosk") {
        return polkit.Result.YES;
    }
});
// The settings page (behind the kiosk's PIN) sets a wrong clock by hand through timedated:
// the time and the NTP switch, nothing else (not the time zone, not the RTC mode).
polkit.addRule(function (action, subject) {
    if ((action.id == "org.freedesktop.timedate1.set-time" ||
         action.id == "org.freedesktop.timedate1.set-ntp") &&
        subject.user == "kiosk") {
        return polkit.Result.YES;
    }
});
EOF

# --- 6b. the clock of an offline Pi --------------------------------------------------------
# A Pi 5 has a real-time clock (/dev/rtc0; it keeps time while off only with its battery): the
# kernel reads it at boot and timedated writes it when the time is set. A Pi 4 has none:
# fake-hwclock (in Raspberry Pi OS) saves the time hourly and at shutdown and restores it at
# boot, never backwards. Enabled on both: on a Pi 5 without a battery it is the fallback.
if [ -e /dev/rtc0 ]; then
    say "real-time clock /dev/rtc0 found (a Pi 5 keeps time while off with its battery fitted)"
fi
if command -v fake-hwclock >/dev/null 2>&1 || [ -e "$(r /lib/systemd/system/fake-hwclock.service)" ]; then
    "$systemctl" enable fake-hwclock.service >/dev/null 2>&1 || say "warning: cannot enable fake-hwclock.service"
    say "fake-hwclock enabled (the clock resumes from its last save after a power cut)"
else
    say "warning: fake-hwclock is not installed, so without an RTC the clock restarts from the image's date" \
        "after a power cut: apt install fake-hwclock, or fit the Pi 5's RTC battery (the kiosk warns of a wrong clock)"
fi

# --- 7. the screen: Chromium unit and labwc autostart for the desktop user -------------
desk="${KIOSK_DESKTOP_USER:-$("$getent" passwd 1000 2>/dev/null | cut -d: -f1 || true)}"
if [ -z "$desk" ]; then
    say "warning: no desktop user (uid 1000): the screen is not set up; run again with KIOSK_DESKTOP_USER=NAME"
else
    entry="$("$getent" passwd "$desk" 2>/dev/null)" || die "desktop user $desk does not exist"
    home="$(r "$(echo "$entry" | cut -d: -f6)")"
    userunits="$home/.config/systemd/user"
    install -d -m 0755 "$home/.config" "$home/.config/systemd" "$userunits" \
        "$userunits/graphical-session.target.wants" "$home/.config/labwc"
    install -m 0644 systemd/melanoma-kiosk-browser.service "$userunits/"
    # What `systemctl --user enable` does; done by hand as the user's manager is not running.
    ln -sfn ../melanoma-kiosk-browser.service "$userunits/graphical-session.target.wants/melanoma-kiosk-browser.service"
    autostart="$home/.config/labwc/autostart"
    if [ -f "$autostart" ] && ! grep -q melanoma-kiosk-browser "$autostart" && [ ! -e "$autostart.before-kiosk" ]; then
        say "keeping the desktop user's own labwc autostart as autostart.before-kiosk"
        cp -p "$autostart" "$autostart.before-kiosk"
    fi
    install -m 0644 systemd/labwc-autostart "$autostart"
    "$chown" "$desk:" "$home/.config" "$home/.config/systemd"
    "$chown" -R -h "$desk:" "$userunits" "$home/.config/labwc"
    say "screen set up for desktop user $desk"
fi

# --- 7b. Syncthing to the RHU: only for a site whose site file has a [sync] table ---------
# The site's [sync] table, checked on the laptop (kiosk/site.py), replaces sync.toml: the kiosk
# never edits it. python -m kiosk.sync.syncthing, as the kiosk user, makes the device's key once
# and rewrites config.xml whole (no discovery, relays, NAT, STUN, reporting or upgrades).
sync_conf="$(r "$etc")/sync.toml"
sync_enable=0
if [ -n "$sync_config" ]; then
    say "installing $etc/sync.toml (the site's Syncthing peers and folders)"
    install -m 0640 "$sync_config" "$sync_conf.new"
    "$chown" root:kiosk "$sync_conf.new"
    mv "$sync_conf.new" "$sync_conf"
fi
if [ -f "$sync_conf" ]; then
    state=/var/lib/melanoma-kiosk
    install -d -m 0700 "$(r "$state")" "$(r "$state/syncthing")"
    "$chown" kiosk:kiosk "$(r "$state")" "$(r "$state/syncthing")"
    for unit in melanoma-kiosk-syncthing.service melanoma-kiosk-sync.service melanoma-kiosk-sync.timer; do
        install -m 0644 "systemd/$unit" "$(r /etc/systemd/system)/$unit"
    done
    # Raspberry Pi OS has no syncthing: Debian's .deb from the bundle, offline (the first-boot hook's
    # apt-get, which needs a network, is only the fallback for a bundle without one).
    if ! command -v "$syncthing" >/dev/null 2>&1 && [ "${#debs[@]}" -gt 0 ]; then
        say "installing ${debs[*]##*/} from the bundle (dpkg -i, offline)"
        "$dpkg" -i "${debs[@]}" || say "warning: dpkg -i of the bundle's debs failed (see above)"
    fi
    if ! syncthing_bin="$(command -v "$syncthing")"; then
        say "warning: syncthing is not installed, so records go by USB stick only: apt install syncthing," \
            "then run this install.sh again (it configures and enables Syncthing from $etc/sync.toml)"
    else
        # From /: python -m must not find modules in the bundle's folder.
        device_id="$(cd / && "$runuser" -u kiosk -- "$venv/bin/python" -m kiosk.sync.syncthing \
            --syncthing "$syncthing_bin" --site "$sync_conf" --home "$(r "$state/syncthing")" --root "${root:-/}")" \
            || die "cannot configure Syncthing from $etc/sync.toml (see the line above); the kiosk itself is installed"
        printf '%s\n' "$device_id" >"$(r "$etc")/syncthing-device-id"
        say "Syncthing device id of this kiosk: $device_id (add it at the RHU; also in $etc/syncthing-device-id)"
        sync_enable=1
    fi
fi

# --- 8. start ---------------------------------------------------------------------------
was_active=0
"$systemctl" is-active --quiet melanoma-kiosk.service 2>/dev/null && was_active=1
"$systemctl" daemon-reload
if [ "$start" = 0 ]; then
    "$systemctl" enable melanoma-kiosk.service
    say "installed melanoma-kiosk $version; the service starts at the next boot"
else
    "$systemctl" enable --now melanoma-kiosk.service \
        || die "installed, but the service did not start: journalctl -u melanoma-kiosk -b"
    if [ "$was_active" = 1 ]; then
        "$systemctl" restart melanoma-kiosk.service \
            || die "installed, but the service did not restart: journalctl -u melanoma-kiosk -b"
    fi
    say "installed and started melanoma-kiosk $version (systemctl status melanoma-kiosk)"
fi
if [ "$sync_enable" = 1 ]; then
    "$systemctl" enable melanoma-kiosk-syncthing.service
    if [ "$start" != 0 ]; then  # Syncthing reads config.xml only when it starts
        "$systemctl" restart melanoma-kiosk-syncthing.service \
            || die "Syncthing did not start: journalctl -u melanoma-kiosk-syncthing -b"
    fi
    # Every 15 minutes: the new screenings into the outbox, the RHU's outcomes from the inbox.
    if [ "$start" != 0 ]; then
        "$systemctl" enable --now melanoma-kiosk-sync.timer
    else
        "$systemctl" enable melanoma-kiosk-sync.timer
    fi
    say "Syncthing to the RHU enabled (melanoma-kiosk-syncthing.service; melanoma-kiosk-sync.timer fills its outbox)"
fi
