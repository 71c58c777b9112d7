"""Scale-out: the platform's BullMQ job queue served by a dispatcher over GPU pods running the `/v1/jobs` service.

`python -m dispatch.worker` takes jobs from Redis and runs each on a pod; `dispatch.api:app` is the
create/status API for deployments without the Next.js front end. A separate process from the service: it
imports `urlguard` and the `storage` package (for videos legacy pods answer with) and nothing else of it.
"""
