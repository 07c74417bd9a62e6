export { createHandler, DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT_MS } from "./handler";
export type {
  Call,
  ConnectHandler,
  EventHandler,
  HandlerOptions,
  HandlerResult,
  NodeRequest,
  RenewHandler,
  SockgateHandler,
} from "./handler";
export type { EventContext, Target } from "./context";
export { SockgateApiError, SockgateError } from "./errors";
export { Sockgate } from "./client";
export type { PublishOptions, PublishTo, Published, Revocation, Revocations, RoomSockets, Session, SockgateOptions } from "./client";
export { DEFAULT_TOLERANCE_SECONDS, SIGNATURE_HEADER, sign, verifySignature } from "./signature";
export { readLifecycle, SockgateWebhookError } from "./lifecycle";
export type { LifecycleEvent } from "./lifecycle";
export type { ConnectCall, ConnectReply, EventCall, EventReply, Identity, Publish, PublishTarget, RenewCall, ReplyPublish } from "./protocol";
export { APP_CODE } from "./protocol";
