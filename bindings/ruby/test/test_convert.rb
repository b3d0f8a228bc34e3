# test_convert.rb: Ruby values -> msgpack in C (Segbus.to_msgpack), checked by decoding with the
# msgpack gem and, where the shape allows, byte for byte against the gem's packer.
require 'minitest'
require 'msgpack'
require 'bigdecimal'
require 'date'
require 'segbus'

class TestConvert < Minitest::Test
  def pack(value, strict: false)
    Segbus.to_msgpack(value, strict: strict)
  end

  def test_scalars_and_containers_round_trip_byte_for_byte
    value = { 's' => 'text é ✓', 'i' => -5, 'u' => 2**63 + 1, 'f' => 1.5, 't' => true, 'n' => nil,
              'l' => [1, [2, { 'x' => 'y' }]], 'empty' => {}, 'e' => [], 'long' => 'x' * 70_000,
              'many' => (0...70).to_h { |i| [i.to_s, i] } }
    bytes, warnings = pack(value)
    assert_nil warnings
    assert_equal MessagePack.pack(value).b, bytes.b
  end

  def test_symbols_become_strings
    bytes, = pack({ a: :b, 'c' => [:d] })
    assert_equal({ 'a' => 'b', 'c' => ['d'] }, MessagePack.unpack(bytes))
  end

  def test_int_limits_and_big_ints_as_decimal_strings
    bytes, w = pack([2**63 - 1, -2**63, 2**64 - 1, 2**64, -2**63 - 1, 10**30])
    assert_nil w
    assert_equal [2**63 - 1, -2**63, 2**64 - 1, (2**64).to_s, (-2**63 - 1).to_s, (10**30).to_s],
                 MessagePack.unpack(bytes)
  end

  def test_time_date_bigdecimal_and_encodings
    value = { 't' => Time.new(2026, 11, 28, 14, 13, 30.123r, '+02:00'), 'd' => Date.new(2026, 11, 28),
              'dt' => DateTime.new(2026, 11, 28, 1, 2, 3), 'bd' => BigDecimal('129.98'),
              'r' => Rational(1, 4), 'latin' => "caf\xE9".dup.force_encoding('ISO-8859-1'),
              'bin' => 'ascii'.b }
    bytes, w = pack(value)
    assert_nil w
    assert_equal({ 't' => '2026-11-28T14:13:30.123+02:00', 'd' => '2026-11-28',
                   'dt' => '2026-11-28T01:02:03+00:00', 'bd' => 129.98, 'r' => 0.25,
                   'latin' => 'café', 'bin' => 'ascii' }, MessagePack.unpack(bytes))
  end

  def test_unserialisable_values_dropped_with_path_and_counted
    before = Segbus.dropped_values
    value = { 'ok' => 1, 'obj' => Object.new,
              'products' => [{ 'price' => Float::NAN, 'name' => 'w' }, { 'bad' => "\xFF".b, 'keep' => 2 }],
              [1] => 'array key', 'broken' => "\xFF".dup.force_encoding('UTF-8') }
    bytes, w = pack(value)
    assert_equal({ 'ok' => 1, 'products' => [{ 'name' => 'w' }, { 'keep' => 2 }] }, MessagePack.unpack(bytes))
    assert_equal 5, w.size
    text = w.join("\n")
    assert_includes text, 'value.obj: no JSON form (value of class Object)'
    assert_includes text, 'value.products[0].price: NaN and Infinity have no JSON form'
    assert_includes text, 'value.products[1].bad: binary string is not valid UTF-8'
    assert_includes text, 'a key must be a String or a Symbol'
    assert_includes text, 'value.broken: string is not valid UTF-8'
    assert_equal before + 5, Segbus.dropped_values
  end

  def test_drops_shrink_header_to_msgpacks_own_form
    value = (0...15).to_h { |i| [i.to_s, i] }
    bytes, w = pack(value.merge('x' => Object.new, 'y' => Float::INFINITY))
    assert_equal 2, w.size
    assert_equal MessagePack.pack(value).b, bytes.b
  end

  def test_depth_limit_stops_cycles
    a = []
    a << a
    bytes, w = pack(a)
    assert_equal 1, w.size
    assert_match(/nested deeper than 32/, w[0])
    d = MessagePack.unpack(bytes)
    n = 0
    while d.is_a?(Array)
      n += 1
      d = d[0]
    end
    assert_equal 32, n
  end

  def test_strict_raises_type_error_naming_the_path
    e = assert_raises(TypeError) { pack({ 'a' => { 'b' => [1, Object.new] } }, strict: true) }
    assert_match(/value\.a\.b\[1\]: no JSON form/, e.message)
  end
end
