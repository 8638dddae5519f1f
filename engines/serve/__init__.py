"""The built-in engine served for a department on Ray Serve (replicas over CPUs, GPUs and nodes).

`deployment` holds the replica (the same backend and job dispatch as the workstation's worker) and
`launch` deploys it on a Ray cluster; workstations reach it over HTTP through the `ray-serve` backend
(engines.backends.ray_serve), which needs no Ray. Only these two modules import ray.
"""

SERVICE = "radstation-engine"
DEFAULT_ROUTE = "/radstation"
