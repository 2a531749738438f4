"""The node's ~/status dict as a diagnostic_msgs/DiagnosticStatus: one level and message that
say what matters most (not active > failing > no map > mapping error > not localized), and
every scalar of the status as a key/value. Frames skipped on purpose (continuous localization
off, the rate cap) are no problem."""
from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue


def diagnostic_status(status: dict, *, name: str, hardware_id: str) -> DiagnosticStatus:
    s = status
    diag = DiagnosticStatus(name=name, hardware_id=hardware_id)
    if s["lifecycle"] != "active":
        diag.level, diag.message = DiagnosticStatus.WARN, f"{s['lifecycle']}: not taking frames"
    elif s["failing"]:
        diag.level, diag.message = DiagnosticStatus.ERROR, s["last_rejection"]
    elif not s["map_loaded"]:
        diag.level, diag.message = DiagnosticStatus.WARN, "no map loaded"
    elif s["mapping"]["error"]:
        diag.level, diag.message = DiagnosticStatus.WARN, s["mapping"]["error"]
    elif not s["localized"] and s["last_rejection"]:
        diag.level, diag.message = DiagnosticStatus.WARN, f"not localized: {s['last_rejection']}"
    elif s["localized"]:
        diag.level, diag.message = DiagnosticStatus.OK, "localized"
    elif not s["localization"]["continuous"]:
        diag.level, diag.message = DiagnosticStatus.OK, "waiting for ~/trigger_localization"
    else:
        diag.level, diag.message = DiagnosticStatus.OK, "waiting for images"
    if s["mapping"]["state"] != "idle":
        diag.message += f"; mapping {s['mapping']['state']}: {s['mapping']['message']}"
    flat = {k: v for k, v in s.items() if not isinstance(v, dict)}
    for group in ("frames", "publishers", "mapping", "tracking", "localization"):
        flat.update({f"{group}.{k}": v for k, v in s.get(group, {}).items() if not isinstance(v, dict)})
    diag.values = [KeyValue(key=k, value=f"{v:.3f}" if isinstance(v, float) else str(v))
                   for k, v in flat.items()]
    return diag
