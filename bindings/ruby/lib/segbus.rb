# segbus.rb: `require "segbus"`: Segbus::Analytics, a drop-in for analytics-ruby's
# Segment::Analytics client that records events into segbus's shared-memory ring (no queue, no
# worker thread, nothing lost at exit, fork-safe). See docs/ruby.md.
require 'logger'
require 'segbus_ext'

module Segbus
  VERSION = '0.1.0'

  # enum segbus_type and enum segbus_full_policy of segbus.h
  TYPES = { track: 1, identify: 2, page: 3, screen: 4, group: 5, alias: 6 }.freeze
  POLICIES = { error: 0, block: 1, drop: 2 }.freeze
  ETIMEDOUT = -10_013 # -SEGBUS_ETIMEDOUT

  class << self
    attr_writer :logger

    def logger
      @logger ||= Logger.new($stderr, progname: 'segbus')
    end

    # Value converted as an event field is: [msgpack String or nil, warnings or nil].
    def to_msgpack(value, strict: false)
      Segbus_ext.sbrb_pack(value, strict ? 1 : 0)
    end

    # Values dropped as unserialisable since load, over all clients.
    def dropped_values
      Segbus_ext.sbrb_dropped
    end
  end

  Segbus_ext.sbrb_setup(proc { |texts| texts.each { |t| Segbus.logger.warn("value dropped: #{t}") } })

  # analytics-ruby's client: Segbus::Analytics.new(write_key: ..., on_error: ...) then
  # track(user_id:, event:, properties:, ...), identify, group, alias, page, screen, flush.
  # Options about analytics-ruby's HTTP worker (batch_size, max_queue_size, ssl, host, port...)
  # are accepted and ignored: the segbusd sidecar delivers. stub: true checks and encodes but
  # records nothing. segbus's own: socket:, strict:, full_policy: (:error, :block, :drop),
  # block_ms:, standalone:, flush_timeout: (seconds, default 15).
  class Analytics
    attr_reader :write_key

    def initialize(opts = {})
      opts = opts.transform_keys(&:to_sym)
      @write_key = opts[:write_key]
      @on_error = opts[:on_error] || proc { |_status, _error| }
      @send = (opts[:stub] || opts[:test]) ? 0 : 1
      @flush_timeout = opts[:flush_timeout] || 15
      policy = POLICIES.fetch((opts[:full_policy] || :error).to_sym) do
        raise ArgumentError, "full_policy must be one of #{POLICIES.keys.join(', ')}"
      end
      @open_args = [opts[:socket], @write_key, policy, Integer(opts[:block_ms] || 0),
                    opts.fetch(:standalone, true) ? 1 : 0, opts[:strict] ? 1 : 0, @send]
      @h = Segbus_ext.sbrb_client_open(*@open_args)
    end

    def track(attrs)
      attrs = symbolize(attrs)
      call(1, attrs[:user_id], attrs[:anonymous_id], attrs[:event], nil, attrs[:properties], attrs)
    end

    def identify(attrs)
      attrs = symbolize(attrs)
      call(2, attrs[:user_id], attrs[:anonymous_id], nil, nil, attrs[:traits], attrs)
    end

    def page(attrs)
      attrs = symbolize(attrs)
      call(3, attrs[:user_id], attrs[:anonymous_id], attrs[:name], attrs[:category],
           attrs[:properties], attrs)
    end

    def screen(attrs)
      attrs = symbolize(attrs)
      call(4, attrs[:user_id], attrs[:anonymous_id], attrs[:name], attrs[:category],
           attrs[:properties], attrs)
    end

    def group(attrs)
      attrs = symbolize(attrs)
      call(5, attrs[:user_id], attrs[:anonymous_id], attrs[:group_id], nil, attrs[:traits], attrs)
    end

    def alias(attrs)
      attrs = symbolize(attrs)
      call(6, attrs[:user_id], nil, attrs[:previous_id], nil, nil, attrs)
    end

    # Waits until the daemon holds every event recorded so far: true, or false once `timeout`
    # seconds passed (default: the client's flush_timeout, 15 s; never without bound, unlike
    # analytics-ruby's flush, which hangs when nothing drains its queue). Events not yet taken
    # stay in the ring for a daemon that starts later.
    def flush(timeout = nil)
      return true if @send.zero?
      timeout ||= @flush_timeout
      rc = Segbus_ext.sbrb_flush(@h, (timeout * 1000).to_i)
      return true if rc.zero?
      Segbus.logger.warn("flush: not every event was taken within #{timeout}s " \
                         "(#{rc == ETIMEDOUT ? 'timed out' : 'no daemon drains it'}); they stay in the ring")
      false
    end

    # Events waiting in the ring are the daemon's; nothing is queued in this process.
    def queued_messages
      0
    end

    def close
      flush
      Segbus_ext.sbrb_client_close(@h)
    end
    alias shutdown close

    # {sent:, full:, dropped:, invalid:, dropped_values:}
    def stats
      Segbus_ext.sbrb_stats(@h)
    end

    private

    # analytics-ruby symbolizes the keys; most callers already use symbols, so look for one
    # first instead of copying every call's hash.
    def symbolize(attrs)
      raise ArgumentError, 'Attributes must be a Hash' unless attrs.is_a?(Hash)
      return attrs if attrs.key?(:user_id) || attrs.key?(:anonymous_id) || attrs.key?(:previous_id)
      attrs.transform_keys { |k| k.is_a?(String) ? k.to_sym : k }
    end

    def call(type, user_id, anonymous_id, a, b, body, attrs)
      r = Segbus_ext.sbrb_send(@h, type, @send, user_id, anonymous_id, a, b, body, attrs[:context],
                               attrs[:timestamp], attrs[:integrations], attrs[:message_id])
      return true if r.equal?(true)
      if r.nil? # closed by close/shutdown: open again, as analytics-ruby keeps accepting
        @h = Segbus_ext.sbrb_client_open(*@open_args)
        return call(type, user_id, anonymous_id, a, b, body, attrs)
      end
      Segbus.logger.warn("event not recorded: #{r[1]} (the ring did not take it)")
      @on_error.call(-1, r[1])
      false
    end
  end
end
