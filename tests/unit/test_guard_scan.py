"""One place decides whether the system may end or move a caller (issue 11): the whole package is scanned.

Every hang-up, dialplan continue/redirect, bridge deletion and removal from a bridge
goes through callflow/core/guard.py. The only other code allowed to touch these ARI
operations is the code that *implements* them for the guard, each listed with why.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "callflow"

GUARD = "core/guard.py"
#: Implementations the guard calls (never called elsewhere: the method scan below proves it).
IMPLEMENTATIONS = {
    "telephony/ari/actions.py": "LineActions over ARI: used only by LineGuard",
    "telephony/ari/channel.py": "Channel.hang_up / continue_in_dialplan / continue_to_listen over ARI: used only by Guard",
    "agents/bridges.py": "Bridges.destroy / remove over ARI: used only by Guard",
    "telephony/media.py": "the media fork's own snoop/externalMedia channels and bridge, never a caller",
    "console/live.py": "the console's own listening channel, snoop and bridge (a supervisor listening in), never a caller",
    "pbx/bench_probe.py": "`callflow bench pbx`'s throw-away probe: its own ARI app (bench-probe) and SIPp bench callers, "
                          "never the product's callers",
}
#: Test doubles shipped in the package (unit tests only).
TEST_DOUBLES = {"telephony/fake.py": "FakeAgents stands for the dialplan agents in unit tests"}

GUARDED_METHODS = {"hang_up", "continue_in_dialplan", "continue_to_listen"}
BRIDGE_METHODS = {"destroy", "remove"}
RAW = [
    ("DELETE", re.compile(r"^channels/\{\}$")),
    ("DELETE", re.compile(r"^bridges/\{\}$")),
    ("ANY", re.compile(r"/continue$|/redirect$|/removeChannel$")),
]


def _text(node: ast.AST) -> str | None:
    """A path literal as a pattern: 'channels/{}' for f"channels/{x}"."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def offenders(planted: dict[str, str] | None = None) -> list[str]:
    """Every forbidden call in the package, plus in `planted` files (relative path → source) that the
    scan must see as if they were in it (never written into the package: other workers scan it too)."""
    sources = {path.relative_to(PACKAGE).as_posix(): path.read_text() for path in sorted(PACKAGE.rglob("*.py"))}
    sources.update(planted or {})
    found = []
    for rel, source in sources.items():
        if rel == GUARD:
            continue
        tree = ast.parse(source, filename=rel)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            name, owner = node.func.attr, ast.unparse(node.func.value)
            where = f"{rel}:{node.lineno} {owner}.{name}"
            if name in GUARDED_METHODS:
                # SafeHangup.hang_up (flows/safety.py) is the IVR's face of the guard and delegates to it
                if name == "hang_up" and (owner == "guard" or owner.endswith(".guard")):
                    continue
                if rel in TEST_DOUBLES:
                    continue
                found.append(where)
            elif name in BRIDGE_METHODS and owner.split(".")[-1] == "bridges":
                found.append(where)
            elif name in ("delete", "post", "request") and node.args:
                first = node.args[1] if name == "request" and len(node.args) > 1 else node.args[0]
                method = "DELETE" if name == "delete" else (
                    _text(node.args[0]) if name == "request" else "POST")
                text = _text(first)
                if text is None:
                    if name == "delete" and rel not in IMPLEMENTATIONS:
                        found.append(where + " (a DELETE of a path we cannot read)")
                    continue
                for wanted, pattern in RAW:
                    if (wanted == "ANY" or wanted == method) and pattern.search(text) and rel not in IMPLEMENTATIONS:
                        found.append(f"{where} {method} {text}")
    return found


def test_no_hang_up_move_or_bridge_deletion_outside_the_guard():
    assert offenders() == []


def test_the_scan_sees_a_violation():
    """The scan is not vacuous: a hang-up written in a flow is caught."""
    planted = {"flows/_scan_probe.py": "async def f(caller, client, bridges):\n"
                                       "    await caller.hang_up('x')\n"
                                       "    await client.delete(f'channels/{caller.id}')\n"
                                       "    await client.post(f'channels/{caller.id}/continue')\n"
                                       "    await bridges.destroy('b')\n"}
    assert len(offenders(planted)) == 4


def test_the_implementations_are_only_called_by_the_guard():
    """LineActions and the Channel/Bridges methods are reached only through core/guard.py."""
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in (GUARD, "telephony/ari/actions.py"):
            continue
        source = path.read_text()
        assert "AriLineActions(" not in source or rel == "controller.py", rel  # built once, handed to LineGuard
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                    "remove_from_bridge", "destroy_bridge") and not ast.unparse(node.func.value).endswith(("line", "guard")):
                raise AssertionError(f"{rel}:{node.lineno} {ast.unparse(node.func)} outside the guard")


def test_agents_and_flows_do_not_import_each_other():
    """Flows talk to core/ only; the desk's procedures (escalation, emergency line, closing) live with the desk."""
    for room, other in (("flows", "callflow.agents"), ("agents", "callflow.flows")):
        for path in sorted((PACKAGE / room).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(other):
                    raise AssertionError(f"{room}/{path.name}:{node.lineno} imports {node.module}")
                if isinstance(node, ast.Import) and any(a.name.startswith(other) for a in node.names):
                    raise AssertionError(f"{room}/{path.name}:{node.lineno} imports {other}")


def test_the_state_and_the_guard_are_pure_core():
    """The call's state and the guard live in core/: neither agents/ nor flows/ owns them."""
    for rel in ("core/call.py", "core/guard.py"):
        source = (PACKAGE / rel).read_text()
        assert "callflow.agents" not in source and "callflow.flows" not in source
        assert "aiohttp" not in source and "sqlite" not in source


def _imports(path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return out


#: What the pure core may not reach for: the adapters' libraries and rooms, sockets, SQL.
NOT_IN_CORE = ("aiohttp", "panoramisk", "sqlite3", "psycopg", "socket", "ssl", "subprocess",
               "callflow.telephony", "callflow.store", "callflow.handoff", "callflow.console", "callflow.audio")


def test_flows_talk_to_core_only_and_core_is_pure():
    """Flows import nothing of callflow but core/ and flows/ (a helper they need moves to core/, as
    the phone-number checks did in session 9); core/ imports no adapter, socket or SQL."""
    for path in sorted((PACKAGE / "flows").glob("*.py")):
        for line, module in _imports(path):
            if module.startswith("callflow.") and not module.startswith(("callflow.core", "callflow.flows")):
                raise AssertionError(f"flows/{path.name}:{line} imports {module}")
    for path in sorted((PACKAGE / "core").glob("*.py")):
        for line, module in _imports(path):
            if module.split(".")[0] in NOT_IN_CORE or module.startswith(NOT_IN_CORE):
                raise AssertionError(f"core/{path.name}:{line} imports {module}")
