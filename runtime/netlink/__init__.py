"""rtnetlink and traffic control over a raw netlink socket, standard library only."""
