"""What the serverless entry points share: `predict.py` (Cog) and `handler.py` (RunPod) at the project root.

Both take the job options under their API names, checked by the API's own model (`api.inputs.JobOptions`),
check the media with the API's content checks (`api.media`), and render with the API's production renderer
(`api.renderer`, over `sadtalker.pipeline.Pipeline`), loaded once per process in its own thread.
"""
