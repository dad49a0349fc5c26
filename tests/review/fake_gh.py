"""A stand-in for the GitHub CLI (`gh`), enough for the example workflows, backed by a JSON file.

Run as ``python fake_gh.py ARGS`` through a ``gh`` shim on PATH. ``$FAKE_GH_DIR/state.json``
holds the pull request's comments and reviews, workflow runs with their
artifacts, and issues; every call is appended to ``$FAKE_GH_DIR/calls.jsonl``.
``--jq`` filters are applied with the real ``jq``, as gh does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HOME = Path(os.environ["FAKE_GH_DIR"])
STATE = HOME / "state.json"


def load() -> dict[str, Any]:
    state: dict[str, Any] = json.loads(STATE.read_text())
    return state


def save(state: dict[str, Any]) -> None:
    STATE.write_text(json.dumps(state, indent=2))


def option(args: list[str], name: str, default: str | None = None) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def emit(value: Any, jq: str | None) -> None:
    text = json.dumps(value)
    if jq is None:
        print(text)
        return
    out = subprocess.run(["jq", "-r", jq], input=text, capture_output=True, text=True, check=True).stdout
    sys.stdout.write(out)


def body_of(args: list[str]) -> str:
    path = option(args, "--body-file")
    if path is not None:
        return Path(path).read_text()
    field = option(args, "-F") or ""
    if field.startswith("body=@"):
        return Path(field[len("body=@") :]).read_text()
    return option(args, "--body") or ""


def api(args: list[str], state: dict[str, Any]) -> int:
    method = option(args, "--method", "GET")
    path = next(a for a in args if a.startswith("repos/"))
    parts = path.split("/")
    jq = option(args, "--jq")
    if method == "GET" and parts[-1] == "comments":
        emit([{"id": c["id"], "body": c["body"]} for c in state["comments"]], jq)
    elif method == "PATCH" and parts[-2] == "comments":
        (comment,) = [c for c in state["comments"] if str(c["id"]) == parts[-1]]
        comment["body"] = body_of(args)
        emit(comment, jq)
    elif method == "GET" and parts[-1] == "reviews":
        emit(state["reviews"], jq)
    else:
        print(f"fake gh: unsupported api call {method} {path}", file=sys.stderr)
        return 1
    return 0


def main(args: list[str]) -> int:
    state = load()
    with (HOME / "calls.jsonl").open("a") as log:
        log.write(json.dumps(args) + "\n")
    command = args[:2]
    if args[0] == "api":
        code = api(args[1:], state)
    elif command == ["pr", "comment"]:
        state["comments"].append({"id": 1000 + len(state["comments"]), "body": body_of(args)})
        print(f"https://github.example/pr/{args[2]}#comment")
        code = 0
    elif command == ["run", "list"]:
        runs = [
            {"databaseId": r["databaseId"]}
            for r in state["runs"]
            if r["headSha"] == option(args, "--commit")
            and r["event"] == option(args, "--event", r["event"])
            and r["status"] == option(args, "--status", r["status"])
        ]
        emit(runs, option(args, "--jq"))
        code = 0
    elif command == ["run", "download"]:
        (run,) = [r for r in state["runs"] if str(r["databaseId"]) == args[2]]
        source = run["artifacts"].get(option(args, "--name"))
        if source is None:
            print("no artifact matches", file=sys.stderr)
            code = 1
        else:
            shutil.copy(source, Path.cwd() / Path(source).name)
            code = 0
    elif command == ["label", "create"]:
        state["labels"] = sorted({*state["labels"], args[2]})
        code = 0
    elif command == ["issue", "list"]:
        label = option(args, "--label")
        found = [
            {"number": i["number"], "title": i["title"]}
            for i in state["issues"]
            if i["state"] == option(args, "--state", "open") and (label is None or label in i["labels"])
        ]
        emit(found, option(args, "--jq"))
        code = 0
    elif command == ["issue", "create"]:
        number = 1 + len(state["issues"])
        state["issues"].append(
            {"number": number, "title": option(args, "--title"), "state": "open",
             "labels": [option(args, "--label")], "body": body_of(args), "comments": []}
        )  # fmt: skip
        print(f"https://github.example/issues/{number}")
        code = 0
    elif command[0] == "issue" and command[1] in ("edit", "comment", "close"):
        (issue,) = [i for i in state["issues"] if str(i["number"]) == args[2]]
        if command[1] == "edit":
            issue["body"] = body_of(args)
        elif command[1] == "comment":
            issue["comments"].append(body_of(args))
        else:
            issue["state"] = "closed"
            issue["comments"].append(option(args, "--comment") or "")
        code = 0
    else:
        print(f"fake gh: unsupported command {args}", file=sys.stderr)
        code = 1
    save(state)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
