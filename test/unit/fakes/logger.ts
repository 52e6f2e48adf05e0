import { pino } from "pino";
import type { Logger } from "../../../internal/pkg/log/logger.js";

/** A logger that writes nothing. */
export const silentLogger: Logger = pino({ level: "silent" });
