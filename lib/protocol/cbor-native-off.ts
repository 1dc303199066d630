/**
 * Imported before cbor-x, everywhere cbor-x is used: cbor-x reads this
 * variable when it loads and, when it is "true", never tries to load its
 * optional native addon (cbor-extract). meshd loads no `.node` file; a test
 * patches process.dlopen to prove it.
 */
process.env.CBOR_NATIVE_ACCELERATION_DISABLED = 'true';

export {};
