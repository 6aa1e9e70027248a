"""The backend manager: model store, merge, launcher, registry, supervisor and manager."""
