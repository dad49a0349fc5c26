"""Settings every test shares: Hypothesis profiles.

* ``ci`` (the default): derandomized, so a run draws the same examples every
  time, on every machine, and a failure seen once is seen again; no deadline
  (a loaded CI machine must not fail a property on timing); a failure prints the
  blob that reproduces it (``@reproduce_failure``).
* ``explore``: many more examples, randomized, to look for new failures
  (``HYPOTHESIS_PROFILE=explore pytest ...``). A failure it finds belongs in a
  test as an ``@example``, so that ``ci`` keeps checking it.

A test's own ``@settings`` still decide what they name (``max_examples`` mostly);
the rest comes from the profile. The profile is loaded here, before any test
module is imported, so that settings objects those modules build inherit it.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", max_examples=1000, derandomize=False, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
