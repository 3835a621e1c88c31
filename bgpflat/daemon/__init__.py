"""What bgpflat's long-running local services share: the state directory and the read-only endpoint."""
