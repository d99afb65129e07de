"""ACE memory: the playbook of bullets and the log of every scored attempt."""
