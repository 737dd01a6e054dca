"""Runs the real hermes-server, the reference the parity tests compare
hermes-wasm's server with.

usage: hermes_server.py HERMES_DIR WORKDIR [ACTION...]

HERMES_DIR is hermes' source tree (server/, lib/, plugins/); WORKDIR holds
hermes-server-config.yml, and relative paths in it resolve there. Each
ACTION is `poll` (one update: hermes' first fills its cache and sends
nothing) or `initsync` (one initsync sequence, from the cache). Without
actions on the command line, they are read from stdin, one per line, and
each is answered `done` on stdout once hermes finished it: one hermes
process serves many rounds, as a long-running server does. The mails
hermes would send go to WORKDIR/mails.txt, one subject per line. Exits 1,
with hermes' trace, if hermes met an error.
"""

import builtins
import os
import sys
import threading
import time


def main() -> int:
    hermes_dir, workdir, actions = sys.argv[1], sys.argv[2], sys.argv[3:]
    sys.path.insert(0, os.path.abspath(hermes_dir))
    os.chdir(workdir)
    builtins.__hermes__ = threading.local()

    from lib.utils.mail import Email

    def record(subject: str) -> None:
        with open("mails.txt", "a", encoding="utf-8") as mails:
            mails.write(subject + "\n")

    Email.send = staticmethod(lambda config, subject, *a, **k: record(subject))
    Email.sendDiff = staticmethod(
        lambda config, contentdesc, previous, current: record(contentdesc)
    )

    state = {"server": None, "error": None}
    ready = threading.Event()
    thread = threading.Thread(target=serve, args=(state, ready), name="hermes-server")
    thread.start()
    ready.wait()
    server = state["server"]
    interactive = not actions
    if interactive:
        actions = (line.strip() for line in sys.stdin if line.strip())
    try:
        for action in actions:
            if state["error"] is not None:
                break
            if action == "poll":
                server._numberOfLoopToProcess = 1
                busy = lambda: server._numberOfLoopToProcess > 0
            elif action == "initsync":
                server._initSyncRequested = True
                busy = lambda: server._initSyncRequested
            else:
                state["error"] = f"unknown action {action!r}"
                break
            while busy() and thread.is_alive() and state["error"] is None:
                time.sleep(0.02)
            if interactive and state["error"] is None:
                print("done", flush=True)
    finally:
        if server is not None:
            server._isStopped = True
        thread.join()
    if state["error"] is not None:
        print(state["error"], file=sys.stderr)
        return 1
    return 0


def serve(state: dict, ready: threading.Event) -> None:
    """hermes-server's main loop, in its own thread as hermes' functional
    tests run it; it waits for the main thread's requests."""
    import logging

    __hermes__.appname = "hermes-server"
    __hermes__.logger = logging.getLogger("hermes-server")
    sys.argv = ["hermes", "server"]
    try:
        from lib.config import HermesConfig
        from server.hermesserver import HermesServer

        server = HermesServer(HermesConfig())
    except BaseException as e:  # the configuration is refused
        state["error"] = f"{type(e).__name__}: {e}"
        ready.set()
        return
    server._numberOfLoopToProcess = 0
    notify = server.notifyException

    def stop_on_error(trace):
        if trace:
            state["error"] = trace
            server._isStopped = True
        notify(trace)

    server.notifyException = stop_on_error
    state["server"] = server
    ready.set()
    server.mainLoop()


if __name__ == "__main__":
    sys.exit(main())
