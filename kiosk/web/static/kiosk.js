/* The kiosk page's one script (no libraries, nothing from the network).
   - Capture through the JSON API with the CSRF header, show a busy screen, then open the result.
   - Follow the station (the physical button): poll /api/state, open a new result when one appears,
     and show the power-button notice ("keep holding to turn off") on every page.
   - Keep the live preview alive when the camera reconnects.
   - The PIN pad (no keyboard) and the slip's print button.
   Every page also works without this script: the forms post normally. */
(function () {
  "use strict";

  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";
  var overlay = document.querySelector("[data-busy-overlay]");
  var navigating = false;

  function setBusy(on) {
    if (overlay) { overlay.hidden = !on; }
  }

  function go(url) {
    navigating = true;
    stopPreview();
    window.location.assign(url);
  }

  function resultUrl(id) {
    return id ? "/screenings/" + encodeURIComponent(id) : "/screenings/last";
  }

  // --- live preview -------------------------------------------------------------------
  var preview = document.querySelector("[data-preview]");
  var streamUrl = preview ? preview.getAttribute("src") : null;

  function stopPreview() {
    // Closing the MJPEG connection frees the server's preview reader while the photo is checked.
    if (preview) { preview.removeAttribute("src"); }
  }

  function startPreview() {
    if (preview && streamUrl) { preview.setAttribute("src", streamUrl + "?t=" + Date.now()); }
  }

  if (preview) {
    preview.addEventListener("error", function () {
      if (!navigating) { window.setTimeout(startPreview, 2000); }
    });
    window.addEventListener("pagehide", stopPreview);
  }

  // --- capture ------------------------------------------------------------------------
  var form = document.querySelector("[data-capture-form]");
  var errorBox = document.querySelector("[data-capture-error]");
  var capturing = false;

  function showError(text) {
    if (errorBox) { errorBox.textContent = text; errorBox.hidden = !text; }
  }

  if (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (capturing) { return; }  // a double tap in the browser sends one request
      capturing = true;
      showError("");
      setBusy(true);
      // The details chosen before the capture (body site, age band, sex) go with it as JSON.
      var patient = {}, any = false;
      Array.prototype.forEach.call(form.querySelectorAll("[data-patient-field]"), function (field) {
        patient[field.name] = field.value;
        any = true;
      });
      var headers = { "X-CSRF-Token": csrf, "Accept": "application/json" };
      if (any) { headers["Content-Type"] = "application/json"; }
      fetch("/api/screenings", {
        method: "POST",
        headers: headers,
        body: any ? JSON.stringify({ capture: true, patient: patient }) : undefined,
        credentials: "same-origin"
      }).then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      }).then(function (answer) {
        if (answer.ok) {
          go(resultUrl(answer.body.id));
          return;
        }
        capturing = false;
        setBusy(false);
        showError(answer.body.message || form.getAttribute("data-msg-network"));
      }).catch(function () {
        capturing = false;
        setBusy(false);
        showError(form.getAttribute("data-msg-network"));
      });
    });
  }

  // --- follow the station (physical button, camera status, notices) --------------------
  // Every page polls, for the power-button notice; only the screening pages open new results.
  var follow = document.body.hasAttribute("data-follow");
  var lastSeq = parseInt(document.body.getAttribute("data-last-seq") || "0", 10);
  var statusBox = document.querySelector("[data-camera-status]");
  var noticeBox = document.querySelector("[data-station-notice]");

  function showNotice(code) {
    if (!noticeBox) { return; }
    var text = code ? noticeBox.getAttribute("data-text-" + code) : null;
    if (text) { noticeBox.querySelector("[data-notice-text]").textContent = text; }
    noticeBox.hidden = !text;
  }

  function poll() {
    if (navigating) { return; }
    fetch("/api/state", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (state) {
        showNotice(state.notice);
        if (!follow) { return; }
        if (state.last && state.last.seq > lastSeq) {
          lastSeq = state.last.seq;
          go(resultUrl(state.last.id));
          return;
        }
        if (!capturing) { setBusy(state.busy); }
        if (statusBox) {
          var ok = state.camera_ok;
          statusBox.classList.toggle("is-warning", !ok);
          var text = ok ? statusBox.getAttribute("data-text-ok")
                        : statusBox.getAttribute("data-text-reconnecting") + ": " + String(state.camera).replace(/^reconnecting: /, "");
          statusBox.textContent = text;
        }
      })
      .catch(function () { /* the kiosk restarting: try again on the next tick */ })
      .then(function () { if (!navigating) { window.setTimeout(poll, 1000); } });
  }

  if (follow || noticeBox) { window.setTimeout(poll, 1000); }

  // --- PIN pad ---------------------------------------------------------------------------
  var pinForm = document.querySelector("[data-pin-form]");
  if (pinForm) {
    var value = pinForm.querySelector("[data-pin-value]");
    var display = document.querySelector("[data-pin-display]");
    var render = function () { if (display) { display.textContent = value.value.replace(/./g, "\u25CF"); } };
    pinForm.addEventListener("click", function (event) {
      var button = event.target.closest("button");
      if (!button) { return; }
      if (button.hasAttribute("data-digit") && value.value.length < 8) {
        value.value += button.getAttribute("data-digit");
      } else if (button.hasAttribute("data-pin-clear")) {
        value.value = "";
      }
      render();
    });
    render();
  }

  // --- print -----------------------------------------------------------------------------
  Array.prototype.forEach.call(document.querySelectorAll("[data-print]"), function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
})();
