export {
  HTTP_ERRORS,
  type HttpMapping,
  type LatchkeyErrorsOptions,
  latchkeyErrors,
  UNAVAILABLE_RETRY_AFTER_SECONDS,
} from './http-errors.js';
