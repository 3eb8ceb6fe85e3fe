"""Loopback peers shipped with the package (like aiosmtpd's own ``testing``): used by the test suite and by the
local stack's sandbox. Importing these pulls in dev-only dependencies (aiosmtpd), so nothing on a Lambda path does."""
