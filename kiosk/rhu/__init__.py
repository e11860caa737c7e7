"""The rural health unit's console: kiosks' FHIR exports in, the doctor's outcomes back out.

- :mod:`kiosk.rhu.db`: PostgreSQL (a province) or SQLite (one RHU), one SQL text.
- :mod:`kiosk.rhu.importer`: NDJSON exports upserted by resource id (idempotent, safe to cut short).
- :mod:`kiosk.rhu.photos`: photos as files named by sha256, outside the database.
- :mod:`kiosk.rhu.outcomes`: the doctor's outcome, written as NDJSON for the station's kiosk.
- :mod:`kiosk.rhu.accounts`: staff accounts, scrypt-hashed passwords.
- :mod:`kiosk.rhu.figures`: follow-through figures per station and month, CSV and an SVG chart.
- :mod:`kiosk.rhu.web`: the Flask app (``kiosk rhu serve``).
- :mod:`kiosk.rhu.bench`: ``python -m kiosk.rhu.bench``, 100,000 screenings into PostgreSQL.
"""

from __future__ import annotations
