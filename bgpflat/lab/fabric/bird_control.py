"""Commands to a running BIRD over its control socket, as every lab sends them.

``birdc`` exits 0 when BIRD refuses a command, and its plain output does not say so in any fixed
words ("syntax error", "IP address expected", "x is not a protocol"). So it runs verbose, where
each reply line carries BIRD's reply code: 9xxx is BIRD's own "I could not parse that", which
becomes a ``LabError`` naming the command, as does a command the client itself does not know and
never sends. The text returned is exactly what plain ``birdc`` prints (the five-character code or
indent of each line removed). Run-time answers (8xxx: "network not in table", "protocol is
down") are output like any other, for the caller to read.
"""

from __future__ import annotations

from pathlib import Path

from bgpflat.errors import LabError
from bgpflat.lab.fabric.netns import COMMAND_TIMEOUT, run
from bgpflat.lab.processes import program

# What birdc says, without a reply code, of a command it does not send at all (client/commands.c).
_CLIENT_REFUSALS = ("No such command.", "Ambiguous command")


def birdc(socket: Path, *command: str, client: str = "birdc", timeout: float = COMMAND_TIMEOUT, where: str = "") -> str:
    """``CLIENT -s SOCKET COMMAND...`` (``client``: ``birdc``, or ``birdc6`` for bird6); its output.
    ``where`` names the BIRD in errors (" on node-1")."""
    verbose = run([program(client), "-v", "-s", str(socket), *command], timeout=timeout)
    lines: list[str] = []
    refused: list[str] = []
    for line in verbose.splitlines():
        if len(line) >= 5 and line[:4].isdigit() and line[4] in " -":  # "CODE text" / "CODE-text"
            if line[0] == "9":
                refused.append(line[5:])
            lines.append(line[5:])
        elif line.startswith("     "):  # the continuation of a reply, indented by the client
            lines.append(line[5:])
        else:  # what the client prints alike in both modes: its own refusals, ">>> " messages
            if line.startswith(_CLIENT_REFUSALS):
                refused.append(line)
            lines.append(line)
    if refused:
        raise LabError(f"{client} {' '.join(command)}{where}: {'; '.join(refused)}")
    return "".join(f"{line}\n" for line in lines)
