"""Object graphs: what each Lambda builds once per execution environment from validated settings."""
