"""Scene editing with recovered objects: compositing modes and the clean background plate."""
