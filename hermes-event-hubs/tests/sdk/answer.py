"""How every SDK script answers: one JSON object on the last line of
stdout, exit status 0; or, when the SDK raised, its error's class and
message, exit status 3."""

import json


def error_of(error: BaseException) -> dict:
    """The SDK's error, as the scripts report it."""
    return {"error": type(error).__name__, "message": str(error)}


def answer(work) -> int:
    """Runs work() and prints what it returns (a dict; one with "error" is a
    failure), or the error it raised."""
    try:
        result = work()
    except Exception as error:  # the SDK's own error is the result
        result = error_of(error)
    print(json.dumps(result))
    return 3 if "error" in result else 0
