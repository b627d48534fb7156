"""The line service: inputs (HTTP, hot folder) feed one micro-batching inspection worker."""
