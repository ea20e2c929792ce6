"""Tar streams into and out of a container's filesystem (Garden's StreamIn and StreamOut).

Each transfer runs in a short-lived helper process (``helper.py``) that joins the
container's mount namespace (and user namespace, if it has one) through its init's pidfd,
takes on the requested user's ids and then extracts or archives with its own streaming
tar code. The kernel therefore resolves every path as the container does and enforces the
user's real permissions; gardend only moves bytes between HTTP and the helper's pipes.
"""
