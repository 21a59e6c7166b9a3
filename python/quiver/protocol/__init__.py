"""The quiver.v1 wire protocol: framing of the uds transport and the message definitions."""
