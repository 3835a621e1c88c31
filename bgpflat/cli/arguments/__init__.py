"""From flags to what a command works with: shared cluster and output options (``common``), the
verification peer's settings (``peer``), the route gate (``gate``) and the learned-route sources of
``verify`` and the gate (``learned``). Commands parse; these turn arguments into settings."""
