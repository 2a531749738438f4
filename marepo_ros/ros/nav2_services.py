"""nav2's requests to the node: ``~/trigger_localization`` (std_srvs/Trigger: localize the next
frame, even with continuous localization off) and ``~/reinitialize_global_localization``
(std_srvs/Empty, AMCL's name: forget the prior and the tracking state; the next pose is a fresh
relocalization). The decisions are ``runtime.requests.LocalizationRequests``; a request at a
wrong moment is refused with the reason (Trigger: ``success`` false; Empty has no answer
fields: the log and ~/status ``localization.last_request`` say it), and the node goes on."""
from __future__ import annotations

from ..runtime.requests import LocalizationRequests
from .kind_log import guarded


class Nav2Services:
    """The two services' callbacks. ``requests``: the node's LocalizationRequests;
    ``lifecycle()``: the node's state; ``map_loaded()``; ``reset_tracking()``: forget the prior
    and the tracker's state; ``log``: a KindLog. ``last_request``: the latest answer, for
    ~/status."""

    def __init__(self, *, requests: LocalizationRequests, lifecycle, map_loaded, reset_tracking, log):
        self._requests, self._lifecycle, self._map_loaded = requests, lifecycle, map_loaded
        self._reset_tracking, self._log = reset_tracking, log
        self.last_request = ""

    @guarded
    def trigger(self, request, response):
        if self._lifecycle() != "active":
            return self._answer(response, False, f"trigger_localization refused: the node is "
                                f"{self._lifecycle()}: activate it first (lifecycle)")
        if not self._map_loaded():
            return self._answer(response, False, "trigger_localization refused: no map loaded: "
                                "set map_path or build one with ~/start_mapping")
        if self._requests.trigger():
            return self._answer(response, True, "the next frame will be localized")
        return self._answer(response, True, "a trigger already waits: the next frame will be localized")

    @guarded
    def reinitialize(self, request, response):
        if self._lifecycle() != "active":
            self._answer(None, False, f"reinitialize_global_localization refused: the node is "
                         f"{self._lifecycle()} (activation starts afresh anyway)")
            return response
        self._reset_tracking()
        self._requests.reinitialize()
        self._answer(None, True, "reinitialized: prior and tracking state forgotten; the next "
                     "pose is a fresh relocalization")
        return response

    def _answer(self, response, ok: bool, message: str):
        """Fill a Trigger ``response`` (None: an Empty service), log and keep the message."""
        self.last_request = message
        self._log("services", message, level="info" if ok else "warning", throttle=False)
        if response is not None:
            response.success, response.message = ok, message
        return response
