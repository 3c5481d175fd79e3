"""The calling application: holds the clinician's session and invokes the runtime."""
