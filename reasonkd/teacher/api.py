"""Calls to an OpenAI-compatible endpoint that survive rate limits and flaky networks.

    result = with_retries(lambda: client.completions.create(...), max_retries=5, backoff=1.0, key=api_key)

A 429 waits what its `Retry-After` (or `retry-after-ms`) header asks, else exponential backoff with jitter;
5xx, 408/409, timeouts and dropped connections (a response cut mid-body included) are retried the same
way; any other error stops at once. The final error names the attempts and never holds the API key
(`scrub`). Used by the openai backend (reasonkd.teacher.backends) and remote scoring
(reasonkd.teacher.remote).
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import time

from reasonkd.errors import ReasonkdError

log = logging.getLogger(__name__)
MAX_WAIT = 300.0


def scrub(message: str, key: str | None) -> str:
    """Error text without the key (some APIs echo a masked or full key in auth errors)."""
    if key and key != "EMPTY":
        message = message.replace(key, "***")
    return re.sub(r"\bsk-[\w*-]{4,}", "sk-***", message)


def retryable(e: Exception) -> bool:
    import openai

    if isinstance(e, (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)):
        return True
    return isinstance(e, openai.APIStatusError) and (e.status_code in (408, 409, 429) or e.status_code >= 500)


def retry_after(e: Exception) -> float | None:
    """Seconds the server asked to wait (Retry-After as seconds or an HTTP date, or retry-after-ms)."""
    headers = getattr(getattr(e, "response", None), "headers", None)
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, when.timestamp() - time.time()) if when else None


def with_retries(call, *, max_retries: int, backoff: float, key: str | None = None, what: str = "teacher API"):
    """call() until it succeeds, retrying what `retryable` allows; ReasonkdError after the last attempt."""
    for attempt in range(max_retries + 1):
        try:
            return call()
        except Exception as e:  # noqa: BLE001 - classified below
            if attempt == max_retries or not retryable(e):
                raise ReasonkdError(
                    f"{what} request failed after {attempt + 1} attempt(s): {type(e).__name__}: {scrub(str(e), key)}"
                ) from None
            asked = retry_after(e)
            delay = min(MAX_WAIT, asked if asked is not None else backoff * 2**attempt * (1 + random.random()))
            log.warning(
                "%s %s (attempt %d/%d); retrying in %.1fs%s",
                what,
                type(e).__name__,
                attempt + 1,
                max_retries + 1,
                delay,
                " (Retry-After)" if asked is not None else "",
            )
            time.sleep(delay)
