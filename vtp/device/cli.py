"""`vtp device …`: register a device, scan, cancel a check-in, flush the journal, send a
heartbeat, rotate the device's key, simulate load. Each command lives in its own module; what they share is the
device session (vtp/device/session.py: device file, lock, journal, broker client) and where
the broker and cards API are (vtp/device/endpoints.py).

Where things are: device files and journals under `<state>/devices/`; the broker and the
cards API from the options, else `KAFKA_BOOTSTRAP_SERVERS`, else the stack `vtp up` runs.
One device's commands may run side by side, but not beside its key rotation (`<device
id>.lock`): they wait for a rotation to end, and a rotation does not start while they run.

`scan` and `heartbeat` first measure the device clock against the cards API (when the last
measurement, kept in the journal, is not recent or says the clock is off); `scan` signs the
corrected time when the clock is off, and says so on stderr (vtp/device/scantime.py).
"""

from __future__ import annotations

import typer

from vtp.device.cancel_cli import cancel
from vtp.device.register_cli import register
from vtp.device.rotate_cli import rotate_command
from vtp.device.scan_cli import scan
from vtp.device.send_cli import flush, heartbeat
from vtp.device.simulate_cli import simulate_command

device_app = typer.Typer(help="A provider's check-in device.", no_args_is_help=True)
device_app.command()(register)
device_app.command()(scan)
device_app.command()(cancel)
device_app.command()(flush)
device_app.command()(heartbeat)
device_app.command("rotate")(rotate_command)
device_app.command("simulate")(simulate_command)
