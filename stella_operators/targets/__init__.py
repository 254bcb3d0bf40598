"""Target types: how a release lands on one kind of host. One module per technology."""
