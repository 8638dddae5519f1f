"""pynetdicom's per-message log handlers, dropped from an association when their output would go nowhere.

Every association comes with handlers that format each DIMSE message and PDU for pynetdicom's INFO and
DEBUG log lines (one block per C-STORE, per PDU), and C-FIND identifiers are pretty-printed for the
log under a `_config` switch, whether or not anything logs at that level: together about a tenth of
the client's CPU in a C-GET. They are unbound when the
"pynetdicom" logger is not enabled for INFO (the default); a site debugging DICOM traffic that turns
that logger up gets them back on the next association.
"""

from __future__ import annotations

import logging
from typing import Any

from pynetdicom import _config, evt
from pynetdicom._handlers import (
    standard_dimse_recv_handler,
    standard_dimse_sent_handler,
    standard_pdu_recv_handler,
    standard_pdu_sent_handler,
)

_STANDARD = (
    (evt.EVT_DIMSE_RECV, standard_dimse_recv_handler),
    (evt.EVT_DIMSE_SENT, standard_dimse_sent_handler),
    (evt.EVT_PDU_RECV, standard_pdu_recv_handler),
    (evt.EVT_PDU_SENT, standard_pdu_sent_handler),
)


def drop_unlogged_handlers(event: Any) -> None:
    """EVT_ESTABLISHED handler: unbind the standard log handlers of `event.assoc` if nothing logs them."""
    logged = logging.getLogger("pynetdicom").isEnabledFor(logging.INFO)
    # C-FIND/C-GET response identifiers are pretty-printed under these process-wide switches, not by a
    # handler; RadStation is pynetdicom's only user in its process, so they follow the logger too
    _config.LOG_RESPONSE_IDENTIFIERS = _config.LOG_REQUEST_IDENTIFIERS = logged
    if logged:
        return
    assoc = event.assoc
    for kind, handler in _STANDARD:
        if handler in [h for h, _args in assoc.get_handlers(kind)]:
            assoc.unbind(kind, handler)
