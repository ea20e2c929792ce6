"""The containerd side: a thin async client over our stubs and the embedded daemon."""
