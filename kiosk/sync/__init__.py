"""Carrying exports and outcomes over a network when there is one: Syncthing, configured by provisioning.

The kiosk never speaks a sync protocol of its own: Syncthing (Debian's
package) does the intermittent, resumable, encrypted transfer between the
peers the site file names, and nothing else. See :mod:`kiosk.sync.syncthing`.
"""

from __future__ import annotations
