"""Container networking: network namespaces, CNI plugins, addresses, NetIn and NetOut."""
