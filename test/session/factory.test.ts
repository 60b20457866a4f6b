import { describe, expect, it } from 'vitest';
import { AipError, aipError } from '../../protocol/index.js';
import { AgentRegistry } from '../../src/agents/registry.js';
import { SUPPORTED_MODES, SessionFactory, isSupported } from '../../src/session/factory.js';
import {
  LinuxServiceSession,
  MobileServiceSession,
  ServiceSession,
} from '../../src/session/service-sessions.js';
import { SESSION_MODES } from '../../src/session/types.js';
import type { Agent, AgentRun } from '../../src/session/types.js';

const base = { sessionId: 'sid', taskName: 'task', request: 'hello' };
const COMMON = ['normal', 'normal_operator', 'service', 'follower', 'batch_normal'];
const CLASS = { windows: ServiceSession, linux: LinuxServiceSession, mobile: MobileServiceSession } as const;

describe('SessionFactory matrix', () => {
  const factory = new SessionFactory();
  for (const platform of ['windows', 'linux', 'mobile'] as const) {
    for (const mode of SESSION_MODES) {
      const ok = platform === 'windows' || mode !== 'operator';
      it(`${mode} on ${platform} → ${ok ? CLASS[platform].name : 'MODE_NOT_SUPPORTED'}`, () => {
        if (ok) {
          const s = factory.create({ ...base, mode, platform });
          expect(s).toBeInstanceOf(CLASS[platform]);
          expect(s.mode).toBe(mode);
          expect(s.platform).toBe(platform);
          expect(s.id).toBe('sid');
          expect(s.taskName).toBe('task');
          expect(s.state).toBe('created');
          expect(isSupported(mode, platform)).toBe(true);
        } else {
          let err: unknown;
          try {
            factory.create({ ...base, mode, platform });
          } catch (e) {
            err = e;
          }
          expect(err).toBeInstanceOf(AipError);
          expect(err).toMatchObject({ kind: 'MODE_NOT_SUPPORTED', code: 3009 });
          expect((err as AipError).message).toBe(
            aipError('MODE_NOT_SUPPORTED', { mode, platform, supported: COMMON }).message,
          );
          expect(isSupported(mode, platform)).toBe(false);
        }
      });
    }
  }

  it('lists every mode for windows and the five common ones elsewhere', () => {
    expect([...SUPPORTED_MODES.windows]).toEqual([...SESSION_MODES]);
    expect([...SUPPORTED_MODES.linux]).toEqual(COMMON);
    expect([...SUPPORTED_MODES.mobile]).toEqual(COMMON);
  });

  it('rejects an unknown mode with the supported list for the platform', () => {
    expect(() => factory.create({ ...base, mode: 'turbo', platform: 'windows' })).toThrow(
      'The turbo mode is not supported on windows. Supported modes: normal, normal_operator, service, follower, batch_normal, operator',
    );
    expect(() => factory.create({ ...base, mode: 'turbo', platform: 'mobile' })).toThrow(
      'The turbo mode is not supported on mobile. Supported modes: normal, normal_operator, service, follower, batch_normal',
    );
  });

  it('rejects an unknown platform with PLATFORM_NOT_SUPPORTED (before looking at the mode)', () => {
    for (const platform of ['macos', 'Windows', '']) {
      try {
        factory.create({ ...base, mode: 'service', platform });
        expect.unreachable();
      } catch (e) {
        expect(e).toMatchObject({
          kind: 'PLATFORM_NOT_SUPPORTED',
          message: `Service session not supported on ${platform}`,
        });
      }
    }
    expect(() => factory.create({ ...base, mode: 'nope', platform: 'bsd' })).toThrow(
      'Service session not supported on bsd',
    );
  });

  it('picks the agent through the registry: plan for inline plans, default otherwise, explicit agent wins', () => {
    const nl: Agent = {
      name: 'nl',
      // eslint-disable-next-line require-yield
      async *run(): AgentRun {
        return { status: 'completed', result: null };
      },
    };
    const f = new SessionFactory({ agents: new AgentRegistry({ agents: [nl], defaultAgent: 'nl' }) });
    expect(f.create({ ...base, mode: 'service', platform: 'linux' }).agent?.name).toBe('nl');
    expect(
      f.create({ ...base, request: '{"steps": []}', mode: 'service', platform: 'linux' }).agent?.name,
    ).toBe('plan');
    const other: Agent = { ...nl, name: 'other' };
    expect(f.create({ ...base, mode: 'service', platform: 'linux', agent: other }).agent).toBe(other);
    expect(new SessionFactory().create({ ...base, mode: 'service', platform: 'linux' }).agent).toBeNull();
  });

  it('takes the target document from an inline plan, or from the option', () => {
    const f = new SessionFactory();
    expect(
      f.create({ ...base, request: '{"object":"Q1.XLSX","steps":[]}', mode: 'service', platform: 'windows' })
        .target,
    ).toBe('q1.xlsx');
    expect(f.create({ ...base, target: 'A.pptx', mode: 'service', platform: 'windows' }).target).toBe(
      'a.pptx',
    );
    expect(f.create({ ...base, mode: 'service', platform: 'windows' }).target).toBeNull();
  });
});
