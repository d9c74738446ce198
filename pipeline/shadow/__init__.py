"""Model lifecycle: which version serves (model-control), shadow runs, comparison, failover.

- ``assignment``: the assignment as pure state; promote/rollback (global or per camera group),
  shadow, canary; which version serves a camera; sampling maths.
- ``control``: the compacted model-control topic (read, change, follow) and the audit table.
- ``live`` / ``watched`` / ``health`` / ``mirror``: an inference worker following the assignment
  (each camera on the version routed to it), mirroring frames to ``frames.shadow``, failing
  over a version that does not load or misbehaves.
- ``comparator`` / ``join`` / ``app``: primary vs candidate detections -> ``model_comparison``.
- ``commands`` / ``report``: ``camcount models ...`` and ``camcount compare``.
"""
