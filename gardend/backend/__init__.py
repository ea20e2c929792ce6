"""Garden semantics over containerd: containers, processes, files, grace time."""
