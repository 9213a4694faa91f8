"""Running the core: jobs, the job handler, the sweeper, the runtime, serve and worker."""
