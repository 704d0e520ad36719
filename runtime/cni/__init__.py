"""netc-cni: the CNI plugin, its protocol, commands and warm server."""
