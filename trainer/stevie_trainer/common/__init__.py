"""What every trainer concern shares: storage over URIs (file, s3, pkg), run artifacts,
user-facing errors, spec files and the trainer's Prometheus telemetry."""
