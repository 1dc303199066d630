// meshd replaces cbor-extract (a native addon) with this stand-in through
// package.json "overrides". cbor-x only tries to load it when native
// acceleration is not disabled, and catches this error when it does.
throw new Error('cbor-extract is disabled in meshd: no native addons are loaded');
