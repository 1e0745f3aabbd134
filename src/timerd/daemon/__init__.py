"""The daemon's lifecycle: `build_app(settings)` and `run(settings)` (uvloop, logging, the
listening sockets, signals, grace, readiness), below the CLI and above the API."""
