"""Log lines by kind ('input', 'publish', 'tf', ...), each kind a child logger of the node's
(``relocalization_node.input``), throttled by rclpy (``throttle_duration_sec``): a problem that
repeats with every frame is logged once per period per kind, not once per frame."""
from __future__ import annotations

import functools

LEVELS = ("debug", "info", "warning", "error")


class KindLog:
    """``log(kind, text, level=..., throttle=True)``; ``kind`` is a name of letters, digits
    and underscores. ``period``: seconds between two lines of one kind."""

    def __init__(self, logger, period: float):
        self._logger, self.period = logger, period
        self._children: dict[str, object] = {}

    def __call__(self, kind: str, text: str, *, level: str = "warning", throttle: bool = True) -> None:
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        if kind not in self._children:
            self._children[kind] = self._logger.get_child(kind)
        logger = self._children[kind]
        kw = {"throttle_duration_sec": self.period} if throttle else {}
        # rclpy keeps one severity per call site: one line per level
        if level == "error":
            logger.error(text, **kw)
        elif level == "warning":
            logger.warning(text, **kw)
        elif level == "info":
            logger.info(text, **kw)
        else:
            logger.debug(text, **kw)


def guarded(callback):
    """Wrap a node callback so that an unexpected exception is logged (kind ``callback``) and
    answered instead of stopping the executor (which would take the whole node down). The object
    has ``_log`` (a ``KindLog``) and, for Trigger services, ``_answer(response, ok, text)``; a
    service without a success field (std_srvs/Empty) gets its empty response."""
    @functools.wraps(callback)
    def wrapper(self, *args):
        try:
            return callback(self, *args)
        except Exception as exc:  # noqa: BLE001 - the node must survive any one message
            text = f"{callback.__name__} failed: {type(exc).__name__}: {exc}"
            self._log("callback", text, level="error")
            if len(args) == 2 and type(args[1]).__name__.endswith("_Response"):  # a service
                if hasattr(args[1], "success"):  # a Trigger
                    return self._answer(args[1], False, f"internal error: {text}")
                return args[1]
            return None
    return wrapper
