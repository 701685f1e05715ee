"""Telemetry shared by the processes of the mesh (ext_proc and the runtimes), which may not import each
other: OpenTelemetry setup and propagation. Imports nothing of ours."""
