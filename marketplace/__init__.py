"""The marketplace: data owners, their validated uploads, admin-held eval sets."""
