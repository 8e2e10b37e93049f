//! HCL as `terraform fmt` writes it.
