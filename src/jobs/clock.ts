import { Injectable } from '@nestjs/common';

/** The time the reset scheduler sees; tests replace now() to cross day, week and month boundaries. */
@Injectable()
export class JobsClock {
  now(): Date {
    return new Date();
  }
}
