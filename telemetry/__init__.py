"""Telemetry shared by the processes of the mesh (ext_proc and the runtimes), which may not import each
other: OpenTelemetry setup and propagation, metrics exposition, and the header that marks extproc's calls
(`hops`). Imports nothing of ours."""
