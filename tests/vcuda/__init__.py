"""vCUDA test rig: the fake driver, its build, and readers for what it records."""
