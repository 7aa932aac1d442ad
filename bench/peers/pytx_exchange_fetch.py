"""Fetch a TCAP or ThreatExchange mock with python-threatexchange's own
clients and print the live records as JSON lines.

Used by `bench/run_exchange.sh mocks` (through `exchange mocks-vs-pytx`) to
prove echotrace's mock servers follow the wire formats pytx speaks: pytx
must fetch the same records echotrace does.

    python pytx_exchange_fetch.py tat BASE_URL USERNAME PASSWORD
    python pytx_exchange_fetch.py te BASE_URL TOKEN PRIVACY_GROUP
"""

import json
import sys


def merge(deltas):
    state = {}
    pages = 0
    for delta in deltas:
        pages += 1
        for key, value in delta.updates.items():
            state[key] = value
    return state, pages


def tat(base, username, password):
    from threatexchange.exchanges.clients.techagainstterrorism import api
    from threatexchange.exchanges.impl.techagainstterrorism_api import (
        TATSignalExchangeAPI,
    )

    api.TATHashListAPI.BASE_URL = base.rstrip("/") + "/"
    exchange = TATSignalExchangeAPI(username, password)
    state, pages = merge(exchange.fetch_iter([], None))
    names = {"pdq": "pdq", "video_md5": "md5"}
    for (kind, value), record in sorted(state.items()):
        if record is not None:
            print(json.dumps({"signal_type": names.get(kind, kind), "value": value}))
    print(json.dumps({"pages": pages}), file=sys.stderr)


def te(base, token, privacy_group):
    from threatexchange.exchanges.clients.fb_threatexchange.api import (
        ThreatExchangeAPI,
    )
    from threatexchange.exchanges.impl.fb_threatexchange_api import (
        FBThreatExchangeCollabConfig,
        FBThreatExchangeSignalExchangeAPI,
    )

    client = ThreatExchangeAPI(token, endpoint_override=base.rstrip("/"))
    collab = FBThreatExchangeCollabConfig(
        name="mock", privacy_group=int(privacy_group)
    )
    exchange = FBThreatExchangeSignalExchangeAPI(client, collab)
    state, pages = merge(exchange.fetch_iter([], None))
    names = {
        "HASH_PDQ": "pdq",
        "HASH_MD5": "md5",
        "HASH_VIDEO_MD5": "md5",
        "URI": "url",
        "HASH_SHA256": "sha256",
    }
    for (kind, value), record in sorted(state.items()):
        if record is not None and kind in names:
            print(json.dumps({"signal_type": names[kind], "value": value}))
    print(json.dumps({"pages": pages}), file=sys.stderr)


if __name__ == "__main__":
    which = sys.argv[1]
    if which == "tat":
        tat(*sys.argv[2:5])
    elif which == "te":
        te(*sys.argv[2:5])
    else:
        sys.exit("usage: pytx_exchange_fetch.py tat|te …")
