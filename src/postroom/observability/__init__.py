"""What operators see: correlation ids threaded through logs, EMF metrics, X-Ray annotations, the SES quota."""
