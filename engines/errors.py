"""The one cancellation type of the whole engine, raised wherever a job's `cancel()` callback said stop.

It lives apart from every engine part (sampling, backends, explanations, the worker, the app) so all of
them raise and catch the same class by `isinstance`, never by its name.
"""

from __future__ import annotations


class JobCancelled(RuntimeError):
    """The job's cancel callback returned True (the user asked to stop): no result is half-made."""
