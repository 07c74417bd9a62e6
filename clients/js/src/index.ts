export { createClient, SockgateClient } from "./client";
export type { ClientEvents, ClientOptions, Ended, RefreshResult, State, StateInfo, TokenSource } from "./client";
export { SockgateError, classOfAny, isAppCode, parseRefusal } from "./errors";
export type { AnyErrorCode, AppErrorCode, ClientErrorCode } from "./errors";
export { fullJitter } from "./backoff";
export type { BackoffOptions } from "./backoff";
export { nextAuth, nextAuthToken } from "./next-auth";
export type { GetSession, GetSessionParams, NextAuthSessionLike } from "./next-auth";
export { CLIENT_EVENTS, CODES, SERVER_EVENTS, classOf, isErrorCode } from "./protocol";
export type {
  ErrorClass,
  ErrorCode,
  Expiring,
  Identity,
  JoinAck,
  LeaveAck,
  HistoryAck,
  HistoryMessage,
  MembersAck,
  PublishAck,
  RefreshAck,
  Refusal,
  RoomMessage,
  RoomPresence,
  RoomRevoked,
  SessionEnd,
} from "./protocol";
